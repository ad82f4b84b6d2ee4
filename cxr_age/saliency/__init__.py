"""Saliency of the age networks: tf-keras-vis maps (`methods`), per-group running averages (`average`),
named anatomical regions (`regions`), the Adebayo et al. randomisation check (`sanity`) and figures (`plots`)."""

METHODS = ("saliency", "smoothgrad", "gradcam", "gradcam++", "scorecam", "layercam")
CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")
