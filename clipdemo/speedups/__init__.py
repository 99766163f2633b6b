"""CPU speed-ups that change how the same models run, never what they compute beyond rounding.

fastconv: Winograd/im2col convolutions; attention: blocked bf16 attention; memory: glibc malloc settings.
Each is switched on by the code that builds a pipeline or starts the server, and each has a flag to turn it off.
"""
