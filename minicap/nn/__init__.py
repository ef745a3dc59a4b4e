"""Layers as forward/backward function pairs (see each module's docstring for shapes and equations)."""
from minicap.nn.basic import (affine_forward, affine_backward, embedding_forward, embedding_backward,
                              sigmoid, sigmoid_forward, sigmoid_backward, tanh_forward, tanh_backward,
                              relu_forward, relu_backward, dropout_forward, dropout_backward)
from minicap.nn.rnn import rnn_step_forward, rnn_step_backward, rnn_forward, rnn_backward
from minicap.nn.lstm import (lstm_step_forward, lstm_step_backward, lstm_step_gate_grads, lstm_weight_grads,
                             lstm_forward, lstm_backward, stacked_weights_T, lstm_input_grads,
                             bilstm_forward, bilstm_backward, reverse_padded)
from minicap.nn.temporal import (temporal_affine_forward, temporal_affine_backward, log_softmax,
                                 temporal_softmax_loss_forward, temporal_softmax_loss_backward)
from minicap.nn.attention import (soft_attention_forward, soft_attention_backward,
                                  doubly_stochastic_penalty_forward, doubly_stochastic_penalty_backward)
from minicap.nn.output import deep_output_forward, deep_output_backward
