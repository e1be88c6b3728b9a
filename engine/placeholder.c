typedef int eng_placeholder_;
