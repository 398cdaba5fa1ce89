"""madnis_plugin.mg5"""
