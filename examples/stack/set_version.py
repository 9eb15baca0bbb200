"""Deploy step of the example plan: `set_version.py VERSION [FILE]` writes the version the api
serves after its restart (Python standard library only)."""
import sys

version = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "api.version"
with open(path + ".tmp", "w") as f:
    f.write(version + "\n")
import os

os.replace(path + ".tmp", path)
print(f"api will serve {version}")
