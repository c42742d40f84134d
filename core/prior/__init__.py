"""Latent diffusion priors over the head model's identity and expression codes (DPHMs).

``diffusion``: cosine-schedule DDPM with v-prediction, DDPM / DDIM samplers, EMA.
``denoiser``: the residual MLP with a sinusoidal time embedding.
``latent``: one prior per latent space (denoiser + normalisation) and the checkpoint file.
``regularizer``: the denoising and SDS losses the tracker adds to its fit.
``train``, ``sample``, ``bench``: ``dphm train prior``, ``dphm sample``, ``--suite prior``.
"""
