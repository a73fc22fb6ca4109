"""Training: one loop (`trainer.loop.run`) and the tasks that differ only in their step.

    trainer.align.train(config)              CLIP alignment of the ECG to the (frozen) echo tower
    trainer.echo_pretrain.train_echo_tower   the echo tower on the archive's measured phenotypes
    trainer.supervised.train_supervised      ECG -> phenotypes, the benchmark's ceiling
    trainer.ssl.train_ssl                    SimCLR on the ECG alone, the benchmark's unimodal baseline

`trainer.config.make_train_config(...)` builds the one typed config they take (the ceiling wraps it
in its own SupervisedConfig); `e2r train` and `e2r train-echo` are thin layers over these.
"""
