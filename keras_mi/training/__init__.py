"""keras_mi.training"""
