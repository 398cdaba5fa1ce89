"""madnis_plugin.core"""
