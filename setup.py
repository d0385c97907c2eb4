"""MDFI: the C core is built by the Makefile, the cffi extension links it."""
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, "mdfi")


class BuildWithMake(build_ext):
    def run(self):
        import _build_ffi

        _build_ffi.build_static_library()
        super().run()


setup(
    name="mdfi",
    version="0.1.0",
    description="Micro Darknet For Inference: a small C99 engine for Darknet networks",
    packages=["mdfi", "weights_tools", "weights_tools.torch"],
    package_data={"mdfi": ["data/*"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15"],
    install_requires=["cffi>=1.15", "numpy", "pillow"],
    extras_require={
        "test": ["pytest", "opencv-python-headless<5", "scikit-learn", "scikit-image",
                 "torch==2.13.0", "mlxtend", "stbpy"],
        "torch": ["torch==2.13.0"],
    },
    cffi_modules=["mdfi/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithMake},
    zip_safe=False,
)
