from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import setup

setup(**generate_distutils_setup(packages=["vla_edge", "vla_edge.ros", "vla_edge.cloud"], package_dir={"": "src"}))
