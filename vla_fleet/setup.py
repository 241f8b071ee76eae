from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import setup

setup(**generate_distutils_setup(packages=["vla_fleet", "vla_fleet.maintenance", "vla_fleet.ota", "vla_fleet.ros"],
                                 package_dir={"": "src"}))
