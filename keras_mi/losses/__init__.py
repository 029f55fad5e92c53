"""keras_mi.losses"""
