"""OpenVINO on CPU: IR from the parity-checked ONNX export, INT8 by NNCF post-training quantization."""
