"""unCLIP (Ramesh et al. 2022) as network plug-ins: the diffusion prior (`unclip-prior`), the
diffusion upsampler (`unclip-upsampler`), and the cascade that runs prior -> decoder ->
upsampler from a folder naming their runs."""
