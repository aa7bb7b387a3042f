"""MultiSketch engine: animates multi-object vector sketches with SDS, run as its own process.

Importing this package is cheap: torch and diffusers are imported only by the modules that need them,
so the Blender add-on can import `server.protocol` and `server.tables` without either.
"""
