"""Geometry: rotations, cameras, alignment and triangulation (jnp, batched)."""
