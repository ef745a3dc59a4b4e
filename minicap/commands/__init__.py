"""The command line: one module per command group, listed in minicap/cli.py.

    charrnn.py    train charrnn, sample          language models (min-char-rnn, LSTM)
    encoder.py    train encoder                  the frozen image CNN
    captioner.py  train captioner, caption, evaluate   Show, Attend and Tell
    real_photos.py   the captioner on Karpathy-format data (--data karpathy): train, evaluate, caption
    vqa.py        train vqa, ask (+ evaluate for VQA checkpoints)   visual question answering
    draw.py       train draw (+ generate for DRAW checkpoints)
    aligndraw.py  train aligndraw, roundtrip (+ generate for alignDRAW checkpoints)
    generate.py   generate                       dispatches on the checkpoint's kind
    data.py       data show
    export.py     data export                    captioned MNIST (or synthetic data) in Karpathy's format
    score.py      score
    assignment.py, grade.py   assignment list/build/check, grade   course assignments
    gradcheck.py  gradcheck
    bench.py      bench
    runs.py       what every training command shares: the output folder (its lock, resume or refuse
                  to overwrite), the settings fixed on resume, option checks

A command module provides configure(parser) and run(args) -> exit status. It composes models
(minicap/models: math only), data (minicap/data), the training loop (minicap/train.py) and figures
(minicap/viz.py); the argparse, files and printing live here and nowhere else.
"""
