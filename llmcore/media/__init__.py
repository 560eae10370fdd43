"""Media for multimodal models: images decoded and prepared as llama.cpp's mtmd prepares them."""
