"""Statistics with honest intervals: the patient bootstrap, the metrics beside their baselines, conformal
prediction intervals, calibration, the age gap and the dataset counts."""
