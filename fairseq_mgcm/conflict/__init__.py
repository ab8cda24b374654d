"""conflict"""
