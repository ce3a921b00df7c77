// Anchor translation unit for the shared LibTorch precompiled header (tune_pch).
