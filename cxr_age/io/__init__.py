"""Reading and writing: metadata tables and their dataset adapters (`datasets`), selection and patient-level
splits, image decoding (PNG, JPEG, DICOM), the prepared-image store, the `tf.data` input pipeline and safe
file writing. Nothing here knows about tasks, networks, figures or run folders."""
