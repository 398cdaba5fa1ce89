"""madnis_plugin.bridge"""
