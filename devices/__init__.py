"""Where networks run and what they cost: profilers for torch, ONNX Runtime and TensorRT."""
