"""Fetches one pinned wheel from the Python package registry and reads files out of it (no install)."""
import glob
import subprocess
import sys
import tempfile
import zipfile


def read_members(requirement: str, members: list[str]) -> dict[str, bytes]:
    """Returns {member path: bytes} for the given paths inside the wheel of `requirement` (e.g. 'timm==1.0.31')."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", tmp, requirement], check=True)
        (wheel,) = glob.glob(f"{tmp}/*.whl")
        with zipfile.ZipFile(wheel) as z:
            return {m: z.read(m) for m in members}
