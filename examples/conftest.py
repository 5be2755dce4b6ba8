"""The example suite uses the plugin's fixtures as an application team would.

Nothing to configure: the plugin finds `database/migrations` and `database/seeds`
from the project root (see the README's options to point it elsewhere).
"""
