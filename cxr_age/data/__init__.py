"""Data layer: metadata tables, age groups, patient-level splits, image checks and the tf.data pipeline."""
