"""The C part of the build; everything else is in pyproject.toml.

atcore/mst/_node.c is the strict MST node decoder and the MST key rules: a relay decodes every
node of every #commit's proof, and in C that costs a sixth of what it did in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "atcore.mst._node",
            sources=["atcore/mst/_node.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        )
    ]
)
