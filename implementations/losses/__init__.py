"""Training losses shared by every modality, each once, each citing its source: perceptual (LPIPS-VGG),
adversarial (GAN objectives, adaptive weight, LeCAM, R1, feature matching), spectral (audio), and
EnCodec's loss balancer. The trainer (`bench.train`) assembles them as a recipe declares."""
