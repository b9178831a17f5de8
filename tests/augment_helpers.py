"""A model whose train_step calls a second-view augmenter the way
R2KDDistiller does, for testing augmenters under `fit`."""

import keras
import tensorflow as tf


class TwoViewModel(keras.Model):
    """Trains a tiny head on the clean view and pulls the augmented view's
    logits towards it; records the mean |A(x) - x| seen during training."""

    def __init__(self, augmenter, num_classes, teacher=None):
        super().__init__()
        self.augmenter = augmenter
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.head = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                                      keras.layers.Dense(num_classes)])
        self.change = keras.Variable(0.0, trainable=False)

    def call(self, x):
        return self.head(x)

    def train_step(self, data):
        x, y = data
        kwargs = {}
        if getattr(self.augmenter, "requires_teacher", False):
            kwargs["teacher"] = lambda images: self.teacher(images, training=False)
        x_aug = self.augmenter({"images": x, "labels": y}, **kwargs)["images"]
        with tf.GradientTape() as tape:
            logits = self(x)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            loss += tf.reduce_mean(tf.square(self(x_aug) - tf.stop_gradient(logits)))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        n = min(x.shape[0], x_aug.shape[0])
        self.change.assign_add(tf.reduce_mean(tf.abs(x_aug[:n] - x[:n])))
        return {"loss": loss}
