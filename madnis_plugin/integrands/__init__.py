"""madnis_plugin.integrands"""
