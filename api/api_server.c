typedef int api_placeholder_;
