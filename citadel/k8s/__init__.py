"""citadel.k8s"""
