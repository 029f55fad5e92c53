"""keras_mi.layers"""
