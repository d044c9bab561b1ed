"""The C part of the build; everything else is in pyproject.toml.

atcore/mst/_node.c is the strict MST node decoder and the MST key rules: a relay decodes every
node of every #commit's proof, and in C that costs a sixth of what it did in Python. The
extension is optional: where it cannot be built (no C compiler), the install goes on and
atcore.mst.node uses the same rules in Python (atcore/mst/node_py.py), logging a warning.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "atcore.mst._node",
            sources=["atcore/mst/_node.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
