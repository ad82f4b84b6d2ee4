"""The paper's networks: `keras.applications` DenseNet backbones with a task's head (`densenet`), the
regressor's losses and metrics (`losses`), and the devices they train on (`distribute`)."""
