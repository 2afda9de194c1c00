"""Classifiers: the contract (``base``), safe weight files (``weights``), the registered families and
``load_classifier`` (``builders``), and the classifier pool of classifier-agnostic training (``pool``)."""
from saliency_core.classifiers.base import (
                                            Classifier,
                                            ClassifierLoadError,
                                            ClassifierOutput,
                                            imagenet_class_names,
                                            state_dict_hash,
)
from saliency_core.classifiers.builders import CLASSIFIERS, DEFAULT_CLASSIFIER, load_classifier

__all__ = ["Classifier", "ClassifierLoadError", "ClassifierOutput", "imagenet_class_names", "CLASSIFIERS",
           "DEFAULT_CLASSIFIER", "load_classifier", "state_dict_hash"]
