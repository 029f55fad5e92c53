"""keras_mi.experiment"""
