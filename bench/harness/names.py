"""System names and labels, shared by the runner and the (torch-free) report renderer."""

SYSTEMS = {
    "torch_eager": "PyTorch eager",
    "torch_cudagraph": "eager + CUDA graph",
    "torch_compile": "torch.compile",
    "torch_compile_ro": "torch.compile reduce-overhead",
    "kiln_disabled": "kiln (graphs disabled)",
    "kiln_whole_graph_capture": "kiln (whole_graph_capture)",
}
BASELINES = ["torch_eager", "torch_cudagraph", "torch_compile", "torch_compile_ro"]
KILN = ["kiln_disabled", "kiln_whole_graph_capture"]
