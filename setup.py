"""Map the repository root (a Blender extension) to the Python package ``dphm``."""

from setuptools import find_packages, setup

SUBPACKAGES = find_packages(exclude=["tests", "tests.*", "build", "build.*"])

setup(
    package_dir={"dphm": "."},
    packages=["dphm"] + [f"dphm.{p}" for p in SUBPACKAGES],
    package_data={"dphm": ["blender_manifest.toml", "weights/*.pt", "weights/*.md"]},
)
