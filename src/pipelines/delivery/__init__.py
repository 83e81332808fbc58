"""Delivery strategy: which approved creative each segment sees, and the experiment arm of each user.

Pure NumPy: the planning task reads click counts from the warehouse and writes the shares these modules
compute; the shares are the propensities the ad server draws with, so effects can be evaluated off-policy.
"""
