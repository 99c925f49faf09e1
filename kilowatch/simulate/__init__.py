"""The fleet simulator: a deterministic fleet model, its ground truth, and COPY / HTTP writers."""
