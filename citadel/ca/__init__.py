"""citadel.ca"""
