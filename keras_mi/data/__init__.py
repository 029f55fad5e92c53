"""keras_mi.data"""
