"""Build the Cython kernels in ext/ into the blinasim package.

Everything else about the package lives in pyproject.toml.
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["_random", "_motility", "_contacts", "_lysis", "_population", "_migration"]

extensions = [
    Extension(
        f"blinasim.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[numpy.get_include(), "ext"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["ext"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
