"""MultiSketch engine: animates multi-object vector sketches with SDS, run as its own process.

Importing this package is cheap: torch and diffusers are imported only by the modules that need them,
so the Blender add-on can import the pure ones it shares (`protocol`, `tables`, `svg`, `files`, `errors`) without
either.
"""

__version__ = "0.1.0"  # the extension's version (blender_manifest.toml); tests/test_packaging.py keeps them equal
