from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import setup

# The dashboard's page, script and style are package data: served from the package in an install space too.
setup(**generate_distutils_setup(packages=["vla_monitoring", "vla_monitoring.ros"], package_dir={"": "src"},
                                 package_data={"vla_monitoring": ["web/*.html", "web/*.css", "web/*.js"]}))
