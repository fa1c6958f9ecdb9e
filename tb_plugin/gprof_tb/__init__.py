"""TensorBoard tab for torch-gprof runs. Installed as the ``gprof_tb`` package (never ``tb_plugin``).

``loader`` is the entry point and imports only tensorboard; everything else is imported lazily, so
a broken torch install can never stop TensorBoard from starting."""
