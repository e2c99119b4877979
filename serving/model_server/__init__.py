"""The model server (`dcgan serve`): TF Serving's gRPC and REST APIs over a ServerCore that loads versioned
SavedModels as tensorflow_model_server does, configured by TF Serving's own flags and text protos; and the infra
check that serves one SavedModel and queries every signature (`infra.load_and_query`, the pipeline's InfraCheck).
Importing this package is free: TensorFlow and gRPC are imported by the modules that need them.
"""
