"""Model presets of the X-as-Supervision benchmarks (no JAX import, so the
reference implementation's Python can read them too).

Each preset overrides fields of the S2 config's `model` (the published head:
depth_dim 64, 3 hypotheses, window 15, 256 head filters) and sets the square
input size in pixels.
"""

PRESETS = {
    "r18_128": dict(resnet_depth=18, image_size=128),
    "r50_256": dict(resnet_depth=50, image_size=256),
    "demo_64": dict(resnet_depth=18, image_size=64, resnet_width=16,
                    depth_dim=32, neighbor_size=7, head_filters=64),
}
