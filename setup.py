"""xsup: unsupervised monocular 3D human pose estimation in JAX/Flax."""

import setuptools

setuptools.setup(
    name="xsup",
    version="0.1.0",
    description=("Unsupervised monocular 3D human pose estimation: "
                 "X as Supervision and Invariant Teacher / Equivariant Student "
                 "in JAX/Flax."),
    long_description=open("README.md").read() if __import__("os").path.exists(
        "README.md") else "",
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["xsup", "xsup.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.10",
        "optax>=0.2",
        "orbax-checkpoint>=0.11",
        "numpy>=1.26",
        "scipy>=1.11",
        "ml-collections>=1.0",
        "tensorflow-datasets>=4.9.7",
        "tensorflow-cpu>=2.16; platform_machine=='x86_64'",
        "tensorflow>=2.16; platform_machine!='x86_64'",
        "tensorboard>=2.16",
        "clu>=0.0.12",
        "grain>=0.2.10",
        "array-record>=0.5",
        "absl-py>=2.0",
        "etils[epath]",
        "matplotlib>=3.7",
        "pillow>=10.0",
        "h5py>=3.8",
        # tensorflow-datasets imports it while preparing but does not declare it.
        "importlib_resources>=6.0",
    ],
    extras_require={
        # nbclient + ipykernel: tests/colabs_test.py runs the notebooks.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "nbclient>=0.10",
                 "nbformat>=5.9", "ipykernel>=6.29"],
    },
    entry_points={"console_scripts": ["xsup=xsup.main:cli"]},
)
