from helpers import make_fashion_mnist

MAKERS = {
    'LocalFashionMNIST': lambda tmp: dict(
        data_prefix=make_fashion_mnist(str(tmp / 'fashion_mnist'), 8, 8)),
}
