"""The torch-free core that serving and training both build on.

- `geometry`: what theta means for every family (the one convention), pixel matrices, composition.
- `preprocess`: the localiser's small copy of an image.

Nothing here imports torch, onnxruntime, grpc or any other part of stn_align.
"""
