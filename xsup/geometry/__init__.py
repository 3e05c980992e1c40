"""Geometry: rotations, cameras, patch coordinates, alignment, triangulation."""
