"""citadel.server"""
