"""Echo2ECG training: paired data sets, ECG augmentations, CLIP loss, the loop, checkpoints, DDP.

Entry points: `trainer.config.make_train_config(...)` -> TrainConfig, `trainer.loop.train(config)`
-> TrainResult (the `e2r train` command is a thin layer over these).
"""
