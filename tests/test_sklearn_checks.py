"""scikit-learn's own estimator checks, on the 2-D `mlp` backbone."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import FeatureExtractor, TransferClassifier

# Every expected failure, with the reason. Aim: none.
EXPECTED_FAILED = {
    "TransferClassifier": {
        "check_no_attributes_set_in_init": (
            "skorch's NeuralNet.__init__ itself sets history_, initialized_ and "
            "virtual_params_; skorch's callbacks and set_params rely on them existing "
            "before fit, so we keep skorch's behaviour"),
        "check_sample_weight_equivalence_on_dense_data": (
            "the network trains in float32: weighted and repeated fits agree to ~1e-6 "
            "(relative) in predict_proba, above the check's rtol=1e-7; "
            "tests/test_sklearn_clients.py compares them at float32 precision"),
        "check_methods_subset_invariance": (
            "transform gives float32 features, and the CPU's float32 matrix kernels round "
            "differently for different batch sizes: measured 1 value in 640 off by 4e-7 "
            "absolute, above the check's atol=1e-7 (predict_proba passes)"),
    },
}


def _expected(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [TransferClassifier(backbone="mlp", weights=None, freeze_depth=0, max_epochs=30, lr=1e-2,
                        batch_size=64, random_state=0, device="cpu"),
     FeatureExtractor(backbone="mlp", weights=None, device="cpu")],
    expected_failed_checks=_expected,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
